"""Compression: structured pruning, knowledge distillation, quantization.

Pure library functions over models and files; the compression pipeline (stages, recipes, targets)
wraps them.
"""
