"""Importing this module installs the one-line error hook (:func:`seunet_monai.errors.install_excepthook`).

The bundle configs import it in their ``imports`` section, which MONAI executes while parsing, so that every
``python -m monai.bundle`` command on them, ``ckpt_export`` and ``verify_net_in_out`` included (they run no
``initialize``), prints our errors as one line with exit status 2.
"""

from seunet_monai.errors import install_excepthook

install_excepthook()
