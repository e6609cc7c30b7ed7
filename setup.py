"""The one compiled part of embedprobe: the cache's row digests (embedprobe/cache/_wsum.c).

Optional: where it cannot be compiled (no C compiler), the install goes on and
embedprobe.cache.digest computes the same digests with numpy, about 2.5x slower. Everything
else about the package is in pyproject.toml.
"""

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext


class BuildExt(build_ext):
    """-O3 for GCC-like compilers (unix, mingw32, cygwin; MSVC keeps its /O2): the plain C digest
    loops are fully vectorised at -O3 (GCC before 12 does not vectorise at -O2)."""

    def build_extensions(self):
        if self.compiler.compiler_type != "msvc":
            for ext in self.extensions:
                ext.extra_compile_args = ["-O3", "-fno-strict-aliasing"]
        super().build_extensions()


setup(
    ext_modules=[Extension("embedprobe.cache._wsum", ["embedprobe/cache/_wsum.c"], optional=True)],
    cmdclass={"build_ext": BuildExt},
)
