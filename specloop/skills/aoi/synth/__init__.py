"""Procedural, deterministic synthetic DEFT workspaces of PCB component crops."""

from specloop.skills.aoi.synth.contact import contact_sheet
from specloop.skills.aoi.synth.plan import SIZES
from specloop.skills.aoi.synth.writer import SynthReport, synthesize_workspace

__all__ = ["SIZES", "SynthReport", "contact_sheet", "synthesize_workspace"]
