"""distill3d: cross-modal knowledge transfer in 3D vision.

Import direction: ``geometry``, ``metrics`` (pure tensor math) <- ``data``, ``models``, ``losses``
<- ``methods`` (one per paper) <- ``cli``, which wires a method to the generic ``engine``.
"""

__version__ = "0.1.0"

from distill3d.errors import Distill3dError

__all__ = ["Distill3dError", "__version__"]
