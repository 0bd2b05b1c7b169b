"""The live dashboard of a watched workspace (FastAPI, one self-contained page, offline)."""

from specloop.dashboard.app import create_app

__all__ = ["create_app"]
