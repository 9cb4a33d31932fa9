//! What can be copied instead of fetched: chunks of the contents this
//! location holds (other files, the older version of the same file), and
//! whole contents held under another path. Indexed once per `get`, from the
//! records (and the files an interrupted `get` placed); every copy is checked against its hash when it is read, so a
//! file changed since it was recorded is never copied from.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::chunk::{ChunkRef, Manifest};
use crate::model::{ContentHash, FileId};
use crate::store::LocalFile;
use crate::WantedContent;

/// Where chunks and contents can be read locally.
pub(super) struct LocalCopies {
    root: PathBuf,
    /// Chunk hash -> (file, offset). A content of one chunk (no stored
    /// manifest) is its own chunk at offset 0.
    chunks: HashMap<ContentHash, (PathBuf, u64)>,
    /// The stored manifest of each file held here, by file id: the older
    /// version of a file being fetched again, whose manifest pages are
    /// mostly those of the new version.
    manifests: HashMap<FileId, Manifest>,
    /// Content hash -> a file holding that whole content.
    wholes: HashMap<ContentHash, PathBuf>,
}

impl LocalCopies {
    /// Indexes the files held here (`files`), and those of them with a
    /// stored manifest (`manifests`), in the working tree at `root`.
    pub(super) fn index(
        root: &Path,
        manifests: Vec<(LocalFile, Manifest)>,
        files: Vec<LocalFile>,
    ) -> Self {
        let mut copies = LocalCopies {
            root: root.to_path_buf(),
            chunks: HashMap::new(),
            manifests: HashMap::new(),
            wholes: HashMap::new(),
        };
        for (file, manifest) in manifests {
            copies.add(&file, &manifest);
            copies.manifests.insert(file.file_id, manifest);
        }
        for file in files {
            let path = file.path.to_path(root);
            if !copies.manifests.contains_key(&file.file_id) {
                copies.chunks.entry(file.hash).or_insert((path.clone(), 0));
            }
            copies.wholes.entry(file.hash).or_insert(path);
        }
        copies
    }

    /// Adds the files found at the paths a `wanted` content is for, of its
    /// size: a `get` killed after renaming them into place, before its
    /// transaction recorded them, leaves them there unrecorded. Copied as
    /// any whole content here is (and checked), they are not fetched again;
    /// the installer then finds them in place and records them.
    pub(super) fn add_in_place(&mut self, wanted: &[WantedContent]) {
        for want in wanted {
            let found = want.targets.iter().find_map(|target| {
                let path = target.path.to_path(&self.root);
                let meta = std::fs::symlink_metadata(&path).ok()?;
                (meta.is_file() && meta.len() == want.size).then_some(path)
            });
            if let Some(path) = found {
                self.wholes.entry(want.hash).or_insert(path);
            }
        }
    }

    fn add(&mut self, file: &LocalFile, manifest: &Manifest) {
        let path = file.path.to_path(&self.root);
        let mut offset = 0;
        for chunk in &manifest.chunks {
            self.chunks
                .entry(chunk.hash)
                .or_insert_with(|| (path.clone(), offset));
            offset += u64::from(chunk.len);
        }
    }

    /// The bytes of `chunk` from a local file, checked; `None` if no file
    /// here has it (any more).
    pub(super) fn chunk(&self, chunk: &ChunkRef) -> Option<Vec<u8>> {
        let (path, offset) = self.chunks.get(&chunk.hash)?;
        let file = std::fs::File::open(path).ok()?;
        let mut bytes = vec![0; chunk.len as usize];
        std::os::unix::fs::FileExt::read_exact_at(&file, &mut bytes, *offset).ok()?;
        (ContentHash::from(blake3::hash(&bytes)) == chunk.hash).then_some(bytes)
    }

    /// A file here that holds content `hash` whole (as recorded: check
    /// what is read from it).
    pub(super) fn whole(&self, hash: ContentHash) -> Option<&Path> {
        self.wholes.get(&hash).map(PathBuf::as_path)
    }

    /// The manifest of the version of file `id` held here, if it has one.
    pub(super) fn manifest_of(&self, id: FileId) -> Option<&Manifest> {
        self.manifests.get(&id)
    }
}
