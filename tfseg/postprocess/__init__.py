"""tfseg.postprocess"""
