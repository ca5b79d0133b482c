"""The verification engine: frames in, face observations out (onnxruntime, OpenCV, numpy only).

Colour convention: every image passed around inside the engine is an RGB ``uint8`` array of
shape (H, W, 3). Conversion from OpenCV's BGR happens at the I/O boundary
(:func:`faceunlock.engine.imageio.read_image`, frame sources).
"""
