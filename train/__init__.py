"""Training: SLAYER models, DLIF, MS-MPPD, attacks and evaluation (``rssnn.train``)."""

from rssnn import _refuse_a_bare_name

_refuse_a_bare_name(__name__)  # its modules import each other relatively: one package, one copy
