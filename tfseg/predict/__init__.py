"""tfseg.predict"""
