"""Reading the .npz archives this package writes (embedding caches, hubness and title vectors, transition counts).

`numpy.savez` stores each array uncompressed, so an archive's arrays take no more memory than the file's bytes.
A deflated member does: 760 kB of zeros inflated to 800 MB of memory when the embedding cache was read (about
1,000 to 1, deflate's limit), so a version folder someone else wrote could take a serving worker's memory on a hot
reload before any shape was checked. `open_npz` refuses such an archive, and never unpickles (`allow_pickle=False`).
"""

from __future__ import annotations

import io
import os
import zipfile

import numpy as np

from .errors import IndexFormatError

__all__ = ["open_npz"]


def open_npz(source: str | os.PathLike[str] | bytes) -> np.lib.npyio.NpzFile:
    """The archive at a path (or in bytes read from one), for `with open_npz(p) as z: z["name"]`. An archive with a
    compressed member is an `IndexFormatError`; a file that is no archive fails in `np.load` as before
    (`ValueError`/`OSError`)."""
    data: str | os.PathLike[str] | io.BytesIO = io.BytesIO(source) if isinstance(source, bytes) else source
    try:
        with zipfile.ZipFile(data) as zf:
            packed = [i.filename for i in zf.infolist() if i.compress_type != zipfile.ZIP_STORED]
    except zipfile.BadZipFile:
        packed = []  # not an archive: np.load says what it is
    if packed:
        name = "archive" if isinstance(source, bytes) else str(source)
        raise IndexFormatError(
            f"{name}: member(s) {', '.join(packed[:3])} are compressed; this package writes .npz archives "
            "uncompressed (numpy.savez), so that reading one takes no more memory than the file: write it again"
        )
    if isinstance(data, io.BytesIO):
        data.seek(0)
    return np.load(data, allow_pickle=False)
