"""deeppose: human pose estimation by coordinate regression (DeepPose, Tompson heatmaps, DSNT)."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("deeppose")
except PackageNotFoundError:  # a source tree that was not installed
    __version__ = "unknown"
