"""The ``pf`` command line: argument parsing and output only; business logic lives below.

argparse rather than click: importing click costs about 40 ms here, more than the whole
``pf list`` budget allows (issue 3), while argparse costs under 5 ms.
"""
