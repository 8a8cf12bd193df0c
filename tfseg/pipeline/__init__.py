"""tfseg.pipeline"""
