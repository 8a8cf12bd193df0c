"""tfseg.model"""
