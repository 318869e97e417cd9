"""The shared vocabulary: what workflows, activities, workers and clients all speak.

The messages that cross the workflow boundary (`models`), the failure taxonomy (`failures`), the
conversation's hash chain (`chain`), the workflow's public names (`names`) and text made safe to
show (`text`). A leaf: it imports nothing else of the project (`make lint` checks), so any layer
may import it and it runs unchanged inside the workflow sandbox.
"""
