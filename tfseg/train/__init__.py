"""tfseg.train"""
