"""The test suite, a regular package: a dependency may ship a top-level `tests` package of
its own (textfsm 2.1.1's wheel does), which would shadow a namespace package of this name."""
