"""Pure-Python core of the add-on: nothing here imports bpy (see README.md)."""
