"""Export: lowering to integers, NetX HDF5 and NIR, bit-exact verification (``rssnn.export``)."""

from rssnn import _refuse_a_bare_name

_refuse_a_bare_name(__name__)  # its modules import each other relatively: one package, one copy
