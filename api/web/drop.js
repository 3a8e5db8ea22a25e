// The upload-link page (/u/<link>): anyone holding the link uploads files
// into its owner's folder with tus (tus-js-client, resumable), and sees
// nothing of that folder.
'use strict';
(() => {
  const link = decodeURIComponent(location.pathname.split('/')[2] || '');
  const list = document.getElementById('drop-progress');
  document.getElementById('drop-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const password = document.getElementById('drop-password').value;
    for (const file of document.getElementById('drop-files').files) {
      const item = document.createElement('li');
      item.textContent = `${file.name}: starting`;
      list.append(item);
      const headers = { 'Upload-Link': link };
      if (password) headers['Upload-Link-Password'] = password;
      const upload = new tus.Upload(file, {
        endpoint: '/tus/',
        headers,
        chunkSize: 64 * 1024 * 1024,
        retryDelays: [0, 1000, 3000, 5000],
        metadata: { filename: file.name, filetype: file.type, mtime: String(Math.floor(file.lastModified / 1000)) },
        onProgress: (sent, total) => {
          item.textContent = `${file.name}: ${Math.floor((sent * 100) / Math.max(total, 1))}%`;
        },
        onSuccess: () => {
          item.textContent = `${file.name}: sent`;
        },
        onError: (error) => {
          let message = error.message;
          try {
            message = JSON.parse(error.originalResponse.getBody()).message;
          } catch {
            // not pan's JSON error: keep tus-js-client's message
          }
          item.textContent = `${file.name}: failed (${message})`;
        },
      });
      upload.start();
    }
  });
})();
