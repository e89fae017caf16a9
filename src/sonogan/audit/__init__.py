"""Audit of synthetic images before anyone trains on them: fidelity, diversity, quality and
memorisation, per fold and class.

- :mod:`~sonogan.audit.features`: extractors (``EXTRACTORS``: domain encoder, offline ImageNet
  EfficientNet-Lite), real features cached under a hash.
- :mod:`~sonogan.audit.fidelity`: FID / KID (torchmetrics), precision / recall / density / coverage.
- :mod:`~sonogan.audit.diversity`: mean pairwise MS-SSIM / SSIM (torchmetrics).
- :mod:`~sonogan.audit.quality`, :mod:`~sonogan.audit.niqe`: BRISQUE (``brisque``), PIQE, NIQE.
- :mod:`~sonogan.audit.memorisation`: calibrated nearest-neighbour near-copy test and gate.
- :mod:`~sonogan.audit.audit`, :mod:`~sonogan.audit.run`, :mod:`~sonogan.audit.report`: one
  class's audit, the ``sonogan synth audit`` command's run, the report section.

Example:
    >>> from sonogan.audit import AuditConfig
    >>> AuditConfig().memorisation_spaces
    ['pixel', 'domain']
    >>> from sonogan.audit.run import audit_synthetic
    >>> run = audit_synthetic("runs/syn-f0", "runs/phantom", "runs/phantom/splits.json",
    ...                       AuditConfig(), "runs/audit-f0", gan_run="runs/gan-f0")    # doctest: +SKIP
"""

from sonogan.audit.config import AuditConfig, DomainEncoderConfig

__all__ = ["AuditConfig", "DomainEncoderConfig"]
