"""Core: params.yaml's schema and checks, the paths every stage reads and writes, the stage
entry point (one line per user error), and the Keras backend.

Imports nothing else of this project.
"""
