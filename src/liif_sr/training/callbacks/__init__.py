"""Training callbacks, one module per ``conf/callbacks/<name>.yaml``: ``finite_loss`` (the NaN guard),
``model_checkpoint``, ``rng_state``, ``val_images`` (sample images for trackers), ``quickstart_report``,
``step_time`` (measured ms/step, ``<run>/summary.json``); ``pictures`` draws the LR | bicubic | LIIF | HR strips both picture callbacks use."""
