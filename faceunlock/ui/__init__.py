"""The PyQt6 desktop app (wizard, tray): not yet built. The only package that imports PyQt6."""
