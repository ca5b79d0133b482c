"""Converters of dlib's public-domain face models to the files shipped in ``models/``.

:mod:`.format` reads dlib's binary serialization; :mod:`.resnet` turns the 128-D recognition
ResNet into ``encoder.onnx`` (and a PyTorch module for fine-tuning), :mod:`.mmod` the CNN face
detector into ``detector.onnx``, :mod:`.shape` the 5-point shape predictor into
``landmarks5.npz``. ``python -m faceunlock.training.convert_dlib`` runs all three. The facts
they rely on are collected in ``docs/model-formats.md``.
"""
