"""Pure geometry on tensors: TF ops only, no Keras, no config, no state."""
