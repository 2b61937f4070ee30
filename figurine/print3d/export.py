"""Export: the model as a coloured 3MF (lib3mf, the 3MF Consortium's library) and a plain STL.

    from figurine.print3d.export import read_3mf, write_3mf, write_stl
    write_3mf(model, "ada.3mf", title="Ada", description="relief: outline")   # model: mesh.Model
    write_stl(model, "ada.stl")
    back = read_3mf("ada.3mf")           # vertices, faces, colour per triangle, metadata
    print(back.colours[:3], back.metadata["Title"])

3MF: one mesh object in millimetres, a base-material group with one material per palette colour
(what multi-material slicers map to filaments) and a material on every triangle; metadata
Title, Application and Description (which relief was used) - no user or machine details.
STL: geometry only (binary, millimetres), written by trimesh. Both are written atomically
through figurine/outputs.py.
"""

from __future__ import annotations

import ctypes
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from figurine.outputs import atomic_write


@dataclass
class Read3MF:
    vertices: np.ndarray  # (N, 3) float
    faces: np.ndarray  # (M, 3) int
    colours: np.ndarray  # (M, 3) uint8, display colour of each triangle's material
    unit: str
    metadata: dict = field(default_factory=dict)


def _wrapper():
    import lib3mf

    return lib3mf, lib3mf.get_wrapper()


def three_mf_bytes(model, title: str = "", description: str = "") -> bytes:
    """The 3MF package as bytes."""
    import figurine

    lib, w = _wrapper()
    m = w.CreateModel()
    m.SetUnit(lib.ModelUnit.MilliMeter)
    meta = m.GetMetaDataGroup()
    for name, value in (("Title", title), ("Application", f"figurine {figurine.__version__}"),
                        ("Description", description)):
        if value:
            meta.AddMetaData("", name, value, "string", True)

    # Geometry: ctypes arrays filled from numpy in one go (the binding's structs are packed).
    mesh = m.AddMeshObject()
    mesh.SetName(title or "figure")
    verts = np.ascontiguousarray(model.vertices, np.float32)
    tris = np.ascontiguousarray(model.faces, np.uint32)
    positions = (lib.Position * len(verts)).from_buffer_copy(verts.tobytes())
    triangles = (lib.Triangle * len(tris)).from_buffer_copy(tris.tobytes())
    mesh.SetGeometry(positions, triangles)

    # Colours: a base material per palette entry, one per triangle.
    group = m.AddBaseMaterialGroup()
    ids = [group.AddMaterial(name, w.RGBAToColor(*rgb, 255)) for name, rgb in zip(model.names, model.palette)]
    rid = group.GetResourceID()
    props = np.zeros((len(tris), 4), np.uint32)
    props[:, 0] = rid
    props[:, 1:] = np.asarray(ids, np.uint32)[model.colour][:, None]
    mesh.SetAllTriangleProperties((lib.TriangleProperties * len(tris)).from_buffer_copy(props.tobytes()))
    mesh.SetObjectLevelProperty(rid, ids[int(model.info.get("colour_roles", {}).get("base") or 0)])
    if not mesh.IsManifoldAndOriented():
        raise RuntimeError("3MF export: the mesh is not manifold and oriented")
    m.AddBuildItem(mesh, w.GetIdentityTransform())

    writer = m.QueryWriter("3mf")
    size = writer.GetStreamSize()
    buf = (ctypes.c_uint8 * size)()
    # The binding's WriteToBuffer copies through a Python list; the C call fills our buffer directly.
    needed = ctypes.c_uint64(0)
    w.checkError(writer, w.lib.lib3mf_writer_writetobuffer(writer._handle, ctypes.c_uint64(size), needed, buf))
    return bytes(buf)[:needed.value]


def write_3mf(model, path, title: str = "", description: str = "", force: bool = False) -> Path:
    data = three_mf_bytes(model, title, description)
    return atomic_write(path, lambda f: f.write(data), force=force)


def stl_bytes(model) -> bytes:
    """Binary STL, millimetres, no colour."""
    import trimesh

    return trimesh.Trimesh(model.vertices, model.faces, process=False).export(file_type="stl")


def write_stl(model, path, force: bool = False) -> Path:
    data = stl_bytes(model)
    return atomic_write(path, lambda f: f.write(data), force=force)


def read_3mf(path) -> Read3MF:
    """Read a 3MF back with lib3mf: the first mesh object, its triangles' colours and metadata."""
    lib, w = _wrapper()
    m = w.CreateModel()
    m.QueryReader("3mf").ReadFromFile(str(path))
    objects = m.GetMeshObjects()
    if not objects.MoveNext():
        raise ValueError(f"{path}: no mesh object")
    mesh = objects.GetCurrentMeshObject()
    verts = np.array([list(p.Coordinates) for p in mesh.GetVertices()], np.float64)
    faces = np.array([list(t.Indices) for t in mesh.GetTriangleIndices()], np.int64)
    colours = np.zeros((len(faces), 3), np.uint8)
    groups = {}
    for i, p in enumerate(mesh.GetAllTriangleProperties()):
        if p.ResourceID == 0:
            continue
        group = groups.setdefault(p.ResourceID, m.GetBaseMaterialGroupByID(p.ResourceID))
        c = group.GetDisplayColor(p.PropertyIDs[0])
        colours[i] = (c.Red, c.Green, c.Blue)
    meta = m.GetMetaDataGroup()
    metadata = {}
    for i in range(meta.GetMetaDataCount()):
        item = meta.GetMetaData(i)
        metadata[item.GetName()] = item.GetValue()
    return Read3MF(verts, faces, colours, m.GetUnit().name if hasattr(m.GetUnit(), "name") else str(m.GetUnit()),
                   metadata)
