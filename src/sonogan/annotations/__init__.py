"""Annotation removal (``001_*`` §3.1, Appendix C): synthetic burned-in annotations on clean
images, a U-Net denoising autoencoder with a weighted MSE, a detector, and a preprocessing
step that applies them. See docs/annotation-removal.md.
"""
