"""The built-in synthetic ultrasound cohort: a dataset every command can run on without patient data.

B-mode transvaginal sector scans of adnexal masses in three classes (benign, borderline,
malignant) with lesion masks, several views per patient, burned-in annotations with clean
twins, scanner styles and clinical variables; see docs/phantom.md.

Modules: :mod:`.render` (sector geometry, speckle, attenuation, display), :mod:`.lesions`
(IOTA-like morphology per class), :mod:`.anatomy` (pelvic scene), :mod:`.annotations`
(text, callipers, arrows), :mod:`.clinical` (menopausal status, centre, age, CA-125),
:mod:`.cohort` (patients, files, spec).

Example:
    >>> from sonogan.phantom import PhantomConfig, generate_phantom
    >>> ds = generate_phantom("runs/phantom", PhantomConfig(seed=0), progress=True)  # doctest: +SKIP
    >>> ds.spec.classes                                                         # doctest: +SKIP
    ['benign', 'borderline', 'malignant']
"""

from sonogan.phantom.cohort import CLASSES, generate_phantom, phantom_montage, phantom_spec, prepare_phantom
from sonogan.phantom.config import PhantomConfig

__all__ = ["CLASSES", "PhantomConfig", "generate_phantom", "phantom_montage", "phantom_spec", "prepare_phantom"]
