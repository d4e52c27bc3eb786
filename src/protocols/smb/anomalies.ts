// Stable anomaly names of the SMB analyzer. SIEM rules key on these; never rename one.

export const SmbAnomaly = {
  /** NetBIOS message type unknown, or length below the SMB minimum or above maxMessageLength. */
  badNetbiosLength: 'smb.bad_netbios_length',
  /** A message that starts with none of 0xFE/0xFD/0xFC/0xFF 'SMB'. */
  badProtocolId: 'smb.bad_protocol_id',
  /** NextCommand not 8-aligned, shorter than a header, or beyond the message. */
  badNextCommand: 'smb.bad_next_command',
  /** A length or offset inside a command points past the command's end. */
  lengthBeyondMessage: 'smb.length_beyond_message',
  unknownCommand: 'smb.unknown_command',
  /**
   * A bounded table is full. Its `table` detail names it: 'pending-requests', 'shares',
   * 'files', 'read-ranges' or 'sessions'.
   */
  tableFull: 'smb.table_full',
  /** Bytes missing from the capture. */
  gap: 'smb.gap',
  /** Parsing resumed on a NetBIOS + SMB2 header after losing sync. */
  resynced: 'smb.resynced',
  /** SMB 3.1.1 compressed message (0xFC 'SMB'): counted, not decoded. */
  compressed: 'smb.compressed',
  /** A command to decode is larger than maxBufferedCommand: counted, not decoded. */
  commandTooLarge: 'smb.command_too_large',
  /** QUERY_DIRECTORY entries with a bad NextEntryOffset, or more than maxDirectoryEntries. */
  badDirectoryEntry: 'smb.bad_directory_entry',
  /** NTLMSSP message whose fields point outside it. */
  badNtlmssp: 'smb.bad_ntlmssp',
  /** Anomalies above maxAnomaliesPerName, reported once at flow end with their count. */
  suppressed: 'smb.anomalies_suppressed',
} as const;

export type SmbAnomalyName = (typeof SmbAnomaly)[keyof typeof SmbAnomaly];
