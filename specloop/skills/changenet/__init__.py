"""ChangeNet classify on PyTorch + timm: model, data, train, infer, evaluate and the FAR@100%recall KPI.

Import the submodule you need (`changenet.kpi` and `changenet.scores` load no torch), or
`changenet.api` for the whole library API the DEFT loop uses; `specloop changenet …` is the
command-line face of it. This file imports nothing, so reading a KPI never loads torch.
"""
