"""The nFamily sandbox host: a stand-in for nself 0.9.9 and the services it drives.

Test infrastructure only. Nothing here is shipped in the collection.
"""
