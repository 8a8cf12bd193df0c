"""tfseg.config"""
