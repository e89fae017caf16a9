"""The flagship protocol: per fold, GAN on the rare class -> sample -> baseline vs augmented
classifiers -> real-only evaluation with bootstrap CIs and paired gains -> report.

It lives beside ``evaluate/`` rather than inside it so the evaluator stays GAN-agnostic
(the one-way flow of docs/design): this package is the only one that imports both.
"""
