"""Trusted code that runs inside the student kernel: the call harness and per-chapter drivers."""
