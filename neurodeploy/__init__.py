"""neurodeploy: compile trained ANNs to spiking networks for Loihi 2, simulate them bit for bit.

Pipeline (one folder per stage): frontends -> passes -> ir -> schemes -> sim / backends -> reports.
"""
__version__ = "0.1.0"

from .errors import NeurodeployError  # noqa: E402,F401
