"""Shared machinery of the real viewpoint datasets (Pascal3D+, ObjectNet3D): annotation records, the object
index, crops that keep the intrinsics in sync, CAD shapes and the sample dictionary.

Modules: :mod:`.annotations` (annotation records → object table, split lists; the record layout and the angle
conversion), :mod:`.isolation` (MAT files read in a child process), :mod:`.cad` (CAD shapes), :mod:`.dataset`
(crops with their intrinsics, the camera convention, the dataset base class).
"""
