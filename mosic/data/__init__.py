"""Video and image data: dataset layouts, probing, frame decoding, readers and (later) clip sampling."""
