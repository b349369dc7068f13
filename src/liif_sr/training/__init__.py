"""Training with Lightning: the LightningModule, its callbacks, checkpoint/resume I/O, loggers, speed options.

``module`` (SRTrainingModule), ``fast`` (channels_last / compile), ``launch`` (launch checks), ``resume`` (which
checkpoint to continue), ``checkpoint_io`` (atomic files), ``callbacks/`` (one module per ``conf/callbacks``
entry), ``loggers/`` (CSV that appends on resume, the W&B run identity). Entry point: :mod:`liif_sr.train`.
"""
