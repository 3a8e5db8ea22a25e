// The page's script, bundled by tests/tus/uppy_upload.mjs with esbuild: a
// web developer's Uppy (core + tus) uploading into pan through an upload
// link. pan and the link come in the query string here; a real page writes
// them in (README, tus).
import Uppy from '@uppy/core';
import Tus from '@uppy/tus';

const query = new URLSearchParams(location.search);
const uppy = new Uppy({ autoProceed: true }).use(Tus, {
  endpoint: `${query.get('pan')}/tus/`,
  headers: { 'Upload-Link': query.get('link') },
  chunkSize: 1024 * 1024,
  retryDelays: [0, 1000],
});

document.querySelector('#files').addEventListener('change', (event) => {
  for (const file of event.target.files) uppy.addFile({ name: file.name, type: file.type, data: file });
});

// What the test reads back.
uppy.on('complete', (result) => {
  window.uploaded = {
    successful: (result.successful ?? []).map((f) => ({ name: f.name, url: f.response?.uploadURL ?? null })),
    failed: (result.failed ?? []).map((f) => ({ name: f.name, error: String(f.error) })),
  };
});
