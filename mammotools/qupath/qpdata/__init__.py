"""QuPath's ``data.qpdata`` files read directly: no QuPath, no Java, nothing executed.

A ``.qpdata`` file is one Java ``ObjectOutputStream`` (QuPath's ``PathIO.writeImageDataSerialized``,
QuPath 0.2 to 0.7): a ``Data file version N`` line, a header naming the image (and, from QuPath
0.3, the QuPath that wrote it), the image type, the object hierarchy (QuPath's path objects, each
with its class, name, colour, children and ROI) and the image's properties. The modules, from
the file down to its bytes:

* :mod:`.reader`: the file's layout and the read functions below;
* :mod:`.objects`: QuPath's classes (path objects, ``PathClass``, ``MetadataMap``, the header);
* :mod:`.rois`: QuPath's ROIs as shapely geometries, the same shapes QuPath shows and exports;
* :mod:`.stream`: the Java serialization grammar, parsed by hand with every size bounded;
* :mod:`.javaio`: its constants, values and byte cursor, and :class:`QpdataError`.

The limits and switches (``HEADER_READ_BYTES``, ``SAFETY_NET``...) are read in the module that
defines them: change them there, not here.
"""

from mammotools.qupath.qpdata.javaio import QpdataError
from mammotools.qupath.qpdata.objects import QpdataHeader
from mammotools.qupath.qpdata.reader import QpdataNode, read_qpdata, read_qpdata_header, read_qpdata_tree

__all__ = ["QpdataError", "QpdataHeader", "QpdataNode", "read_qpdata", "read_qpdata_header", "read_qpdata_tree"]
