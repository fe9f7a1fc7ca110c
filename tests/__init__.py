"""The test suite, a regular package: a dependency may ship a top-level `tests` package of
its own (textfsm 2.1.1's wheel does), which would shadow a namespace package of this name.
Its folders stay without an `__init__.py`: their modules import their neighbours by name."""
