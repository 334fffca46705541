"""The optional C extension of the matcher (monitor/rules/_native.c). Everything else about the
package is in pyproject.toml. `optional=True`: where no C compiler is found, the install goes on
and the matcher runs its Python versions of the same loops (monitor/rules/native.py)."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension("monitor.rules._native", ["monitor/rules/_native.c"], optional=True),
    ]
)
