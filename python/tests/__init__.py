"""Tests of the Python package mmipc (standard library only; numpy used when present).

    MMIPC_LIB=build/libmmipc.so PYTHONPATH=python python3 -m unittest discover -v -s python/tests -t python

This file makes python/tests a package, which `unittest discover -t python` needs to import it.
"""
