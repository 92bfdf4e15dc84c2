"""``python -m seunet_monai COMMAND``: facts about the installed package.

Commands:
    ``bundle-path``  print the bundle folder, the one holding ``configs/`` (a contract: scripts rely on it), e.g.
                     ``python -m monai.bundle run --config_file "$(python -m seunet_monai bundle-path)/configs/train.json"``
                     from any directory;
    ``version``      print the package version.

The preparation scripts and the experiment runner are console scripts (``seunet-prepare-monuseg``,
``seunet-experiment``, ...; see :mod:`seunet_monai.cli`).
"""

from __future__ import annotations

import argparse
import sys

from seunet_monai import __version__
from seunet_monai.errors import SeunetError
from seunet_monai.runtime.resources import bundle_path

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m seunet_monai", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    sub.add_parser("bundle-path", help="print the bundle folder (the one holding configs/)")
    sub.add_parser("version", help="print the package version")
    args = parser.parse_args(argv)
    if args.command == "version":
        print(__version__)
        return 0

    try:
        print(bundle_path())
    except SeunetError as e:
        print(f"python -m seunet_monai: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
