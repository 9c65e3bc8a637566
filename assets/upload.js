// The upload page's uploader: Uppy's Dashboard and tus plugin (npm `uppy`),
// against Gyri's tus endpoint. Files of one study share a study upload
// (POST /api/v1/study-uploads, kept in localStorage until it is completed,
// so that an interrupted upload resumes into the same study); when every
// file is in, the study upload is completed and the page goes to the study.
import { Uppy, Dashboard, Tus } from './uppy.min.mjs'

const KEY = 'gyri.study_upload'

function whenHydrated () {
  return new Promise((resolve) => {
    const ready = () => document.body && document.body.dataset.hydrated === 'true' &&
      document.getElementById('uppy')
    if (ready()) return resolve()
    const timer = setInterval(() => { if (ready()) { clearInterval(timer); resolve() } }, 50)
  })
}

function guessSequence (name) {
  const n = name.toLowerCase()
  if (!/\.nii(\.gz)?$/.test(n)) return ''
  if (/flair/.test(n)) return 'flair'
  if (/t1|mprage|spgr|bravo/.test(n)) return 't1'
  return ''
}

async function api (path, csrf, body) {
  const res = await fetch(path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify(body || {}),
    credentials: 'same-origin'
  })
  const data = await res.json().catch(() => ({}))
  if (!res.ok) throw new Error(data.error || `${res.status} ${res.statusText}`)
  return data
}

async function openStudyUpload (csrf) {
  const kept = window.localStorage.getItem(KEY)
  if (kept) {
    const res = await fetch(`/api/v1/study-uploads/${kept}`, { credentials: 'same-origin' })
    if (res.ok && (await res.json()).status === 'open') return kept
    window.localStorage.removeItem(KEY)
  }
  const patient = document.getElementById('patient-ref').value.trim()
  const created = await api('/api/v1/study-uploads', csrf, patient ? { patient_ref: patient } : {})
  window.localStorage.setItem(KEY, created.id)
  return created.id
}

async function main () {
  await whenHydrated()
  const target = document.getElementById('uppy')
  const csrf = target.dataset.csrf
  const status = document.getElementById('upload-status')
  const say = (text, error) => {
    status.textContent = text
    status.className = error ? 'error' : ''
  }
  if (window.localStorage.getItem(KEY)) {
    say('An earlier upload did not finish: add the same files again to resume it.')
  }

  const uppy = new Uppy({ autoProceed: false, id: 'gyri-study' })
    .use(Dashboard, {
      target,
      inline: true,
      height: 430,
      width: '100%',
      showProgressDetails: true,
      proudlyDisplayPoweredByUppy: false,
      fileManagerSelectionType: 'both',
      note: 'A DICOM folder, a zip of one, or NIfTI files (.nii, .nii.gz)',
      metaFields: [
        { id: 'sequence', name: 'Sequence (NIfTI)', placeholder: 't1 or flair' }
      ]
    })
    .use(Tus, {
      endpoint: '/api/v1/uploads',
      headers: { 'X-CSRF-Token': csrf },
      // Each PATCH commits at its end; smaller requests lose less on a cut.
      chunkSize: 64 * 1024 * 1024,
      retryDelays: [0, 1000, 3000, 5000, 10000],
      limit: 4,
      allowedMetaFields: ['name', 'filename', 'study_upload', 'sequence'],
      removeFingerprintOnSuccess: true
    })

  uppy.on('file-added', (file) => {
    const sequence = guessSequence(file.name)
    if (sequence) uppy.setFileMeta(file.id, { sequence })
  })

  let studyUpload = null
  uppy.addPreProcessor(async (fileIDs) => {
    try {
      studyUpload = await openStudyUpload(csrf)
    } catch (e) {
      say(`The upload cannot start: ${e.message}`, true)
      throw e
    }
    for (const id of fileIDs) {
      uppy.setFileMeta(id, { study_upload: studyUpload, filename: uppy.getFile(id).name })
    }
  })

  uppy.on('complete', async (result) => {
    if (result.failed.length > 0 || result.successful.length === 0) {
      if (result.failed.length > 0) {
        say(`${result.failed.length} file(s) did not upload; retry them or remove them.`, true)
      }
      return
    }
    try {
      say('All files are in; starting the analysis…')
      let done = await api(`/api/v1/study-uploads/${studyUpload}/complete`, csrf)
      window.localStorage.removeItem(KEY)
      // Ingest may find the study was uploaded before and merge it into that
      // one: wait for it (a while) before opening the study.
      say('Uploaded. Reading the files…')
      for (let i = 0; i < 60 && !done.duplicate_of &&
           ['queued', 'ingesting'].includes(done.study_status); i++) {
        await new Promise((resolve) => setTimeout(resolve, 500))
        const res = await fetch(`/api/v1/study-uploads/${studyUpload}`, { credentials: 'same-origin' })
        if (res.ok) done = await res.json()
      }
      const study = done.duplicate_of || done.study_id
      say(done.duplicate_of ? 'This study was uploaded before; opening it…' : 'Opening the study…')
      window.location.assign(`/studies/${study}`)
    } catch (e) {
      say(`The study could not be completed: ${e.message}`, true)
    }
  })
  window.gyriUppy = uppy
}

main()
