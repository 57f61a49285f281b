"""The ``pf`` command line: argument parsing and output only; business logic lives below.

argparse rather than click: importing click costs about 40 ms here, more than the whole
``pf list`` budget allows (2.5x a bare interpreter), while argparse costs under 5 ms.
"""
