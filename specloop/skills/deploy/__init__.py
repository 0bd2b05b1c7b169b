"""Production deployment of a generated project: Docker environment, image, compose, smoke, monitoring.

Deterministic tools only (no LLM, no agents): ``docker_env`` detects the engine, ``render`` writes
the Dockerfile, compose file and monitoring files from ``specloop/templates/deploy/``, ``image``
builds and checks the image, ``service`` brings a version up and takes it down, ``smoke`` checks
the endpoints and measures latency, ``router`` and ``bluegreen`` switch traffic between versions,
``promtool`` and ``drift`` watch it run, ``reports`` writes what happened.
"""
