"""Multi-object tracking of segmented instances across video frames (ByteTrack)."""
