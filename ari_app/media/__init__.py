"""Live media: caller audio captured from Asterisk (snoop + externalMedia) and fed to the detectors."""
