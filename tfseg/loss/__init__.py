"""tfseg.loss"""
