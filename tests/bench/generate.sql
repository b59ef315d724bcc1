-- One chunk of nFamily-shaped data (about 100 MB on disk with indexes): families with members'
-- user accounts, posts with text bodies, media items and audit events with JSON state. Run
-- repeatedly until the database reaches the size wanted; every run adds new, unique rows.
\set chunk_families 4000
BEGIN;
CREATE TEMP TABLE new_families ON COMMIT DROP AS
  SELECT gen_random_uuid() AS id, 'Bench family ' || md5(random()::text) AS name FROM generate_series(1, :chunk_families);
INSERT INTO public.families (id, name, settings)
  SELECT id, name, jsonb_build_object('timezone', 'Europe/Berlin', 'locale', 'en') FROM new_families;
CREATE TEMP TABLE new_users ON COMMIT DROP AS
  SELECT gen_random_uuid() AS id, f.id AS family_id, g AS n FROM new_families f, generate_series(1, 5) g;
INSERT INTO public.users (id, email, password_hash, display_name, profile)
  SELECT id, id::text || '@bench.nfamily.test', '$2b$10$' || substr(md5(random()::text) || md5(random()::text), 1, 53),
         'Member ' || n, jsonb_build_object('bio', repeat(md5(random()::text), 2))
  FROM new_users;
INSERT INTO public.posts (family_id, author_id, body, metadata)
  SELECT u.family_id, u.id, repeat(md5(random()::text) || ' ', 8), jsonb_build_object('reactions', (random() * 40)::int)
  FROM new_users u, generate_series(1, 12);
INSERT INTO public.media_items (family_id, uploaded_by, file_name, mime_type, file_size, storage_path, checksum_sha256, metadata)
  SELECT u.family_id, u.id, 'IMG_' || g || '.jpg', 'image/jpeg', (random() * 5000000)::bigint,
         'prod/' || u.family_id || '/family/media/' || gen_random_uuid() || '/IMG_' || g || '.jpg',
         encode(sha256(random()::text::bytea), 'hex'), jsonb_build_object('width', 4032, 'height', 3024)
  FROM new_users u, generate_series(1, 4) g;
INSERT INTO public.audit_events (family_id, event_type, actor_id, subject_id, subject_type, new_state, ip_address, user_agent)
  SELECT u.family_id, 'post.created', u.id, gen_random_uuid()::text, 'post',
         jsonb_build_object('visibility', 'family', 'summary', md5(random()::text)), '10.0.0.1'::inet, 'nFamily-iOS/3.2 (bench)'
  FROM new_users u, generate_series(1, 20);
COMMIT;
