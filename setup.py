"""Build configuration beyond pyproject.toml: the optional compiled book loop.

The extension is optional: without a C compiler the build goes on and the package runs the
same loop in pure Python (``kraken_proto.book.ACCELERATED`` tells which).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("kraken_proto._speedups", ["src/kraken_proto/_speedups.c"], optional=True),
    ],
)
