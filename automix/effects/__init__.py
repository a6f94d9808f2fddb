"""The effects chain, twice: `render` (pedalboard, what the user hears) and `twin` (torch,
differentiable, what the network learns through). Both read the dataclasses in `automix.params`.
"""
