"""The one part of regshield in C: the embedded DNS server's UDP loop and rate limiter
(src/regshield/dns/_udp.c; regshield/dns/udp.py says why). Everything else is in
pyproject.toml. Where no C compiler is found, the package installs without it and the server
answers from its Python loop."""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "regshield.dns._udp",
            sources=["src/regshield/dns/_udp.c"],
            extra_compile_args=["-Wall", "-Wextra", "-Wno-unused-parameter",
                                "-Wno-missing-field-initializers"],
            optional=True,
        ),
    ],
)
