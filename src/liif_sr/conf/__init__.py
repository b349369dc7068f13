"""Hydra configs of liif-sr (shipped in the wheel). Importing it (Hydra does, to find the configs) registers
the ``${liif_sr.*}`` resolvers they use, also for ``hydra.compose`` outside the console entries."""

from liif_sr.hydra_app import register_resolvers

register_resolvers()

from liif_sr.conf.schema import register_schemas  # noqa: E402 - after the resolvers, as Hydra reads both

register_schemas()
