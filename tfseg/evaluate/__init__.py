"""tfseg.evaluate"""
